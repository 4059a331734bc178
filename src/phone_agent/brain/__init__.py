"""The brain: what the agent says and does (persona, prompt packing, LLM chain, tools)."""
