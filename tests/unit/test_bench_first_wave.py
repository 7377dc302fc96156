"""bench.campaign_scale.first_wave: when the first outage and the first wave's last began,
counted from the control planes' end, whatever order the outages are listed in."""

from bench.campaign_scale import first_wave


def test_the_first_and_the_limit_th_outage_by_start_time():
    outages = [(14.0, 20.0), (10.5, 12.0), (11.0, 30.0), (12.5, 13.0)]  # (start, end), unordered
    assert first_wave(10.0, outages, 3) == {"first_outage": 0.5, "wave_formed": 2.5}


def test_fewer_workers_than_the_limit_form_the_wave_with_the_last():
    assert first_wave(0.0, [(3.0, 4.0), (1.0, 2.0)], 10) == {"first_outage": 1.0, "wave_formed": 3.0}
