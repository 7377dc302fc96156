"""Host side: pure argv builders and output parsers, plus the single executor seam."""
