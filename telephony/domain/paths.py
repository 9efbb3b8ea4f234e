"""Where the project lives: the default home of prompts, data and example files."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
