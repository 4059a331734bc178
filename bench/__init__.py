"""Benchmarks: voice-to-voice latency, greeting, pacing, CPU and memory, ours vs stock Pipecat."""
