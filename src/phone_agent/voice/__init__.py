"""The per-call Pipecat pipeline and its processors."""
