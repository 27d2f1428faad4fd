"""`voxcast`: the command line people use against a running Voxcast API."""
