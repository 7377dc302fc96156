"""A kubeconfig the client cannot use is named in one line, with what is wrong with it: the
client's own loader raises whatever its parsing meets, none of which names the file."""

import pytest

from kubeupgrade.errors import InvalidInput
from kubeupgrade.kube.client import KubeApi

WORKING = """\
apiVersion: v1
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443"}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
users:
- name: u
  user: {token: abc}
"""


@pytest.mark.parametrize(("content", "why"), [
    (b"", "is empty"),
    (b"apiVersion: v1\nclusters: [\n", "not valid YAML (expected the node content, but found '<stream end>' at line 3"),
    (b"- clusters\n- users\n", "not shaped like a kubeconfig"),
    (b"just words\n", "not shaped like a kubeconfig"),
    ("apiVersion: v1 # \xe9\n".encode("latin-1"), "not UTF-8 text (byte 0xe9 at offset 17)"),
    (b"apiVersion: v1\n", "Expected key current-context"),
    (WORKING.replace("current-context: x", "current-context: y").encode(), "Expected object with name y"),
    (WORKING.replace("{token: abc}", "{client-certificate: /nonexistent.crt, client-key: /nonexistent.key}").encode(),
     "/nonexistent.crt"),
])
def test_an_unusable_kubeconfig_is_named_in_one_line(tmp_path, content, why):
    kubeconfig = tmp_path / "admin.conf"
    kubeconfig.write_bytes(content)
    with pytest.raises(InvalidInput) as raised:
        KubeApi(str(kubeconfig))
    message = str(raised.value)
    assert message.startswith(f"kubeconfig {kubeconfig}: ") and why in message, message
    assert "\n" not in message


def test_a_directory_or_a_missing_file_is_named(tmp_path):
    for path in (tmp_path, tmp_path / "missing.conf"):
        with pytest.raises(InvalidInput, match=f"kubeconfig {path}: "):
            KubeApi(str(path))


def test_a_working_kubeconfig_loads_without_reaching_the_server(tmp_path):
    kubeconfig = tmp_path / "admin.conf"
    kubeconfig.write_text(WORKING)
    api = KubeApi(str(kubeconfig))  # nothing listens there: loading connects to nothing
    assert api.core.api_client.configuration.host == "https://127.0.0.1:6443"
