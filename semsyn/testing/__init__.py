"""Test aids for semsyn: helpers that tests and demos use, never the way users run or publish models."""
