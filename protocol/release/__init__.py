"""What comes out: the release folder (synthetic.csv, privacy.json, run.json) and checkpoints."""
