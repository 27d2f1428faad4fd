"""Media plane: the Asterisk instance and the SIPp far ends that Voxcast runs and talks to."""
