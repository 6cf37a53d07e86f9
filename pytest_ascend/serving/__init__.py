"""Serving: an SGLang server launched and owned for a session (or connected to), its HTTP
client, and serving configurations / launch scripts derived from the model and the devices.
Nothing here knows pytest."""
