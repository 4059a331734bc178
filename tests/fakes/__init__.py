"""Local servers speaking the providers' real wire protocols (OpenAI, Twilio, ElevenLabs, Deepgram),
plus `MediaStreamCaller`, which plays Twilio's side of a Media Stream against our app."""
