"""The devices the suite runs on."""
