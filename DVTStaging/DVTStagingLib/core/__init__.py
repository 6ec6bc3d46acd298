"""What every part of the core shares: errors, progress lines, JSON and file helpers, the stage names."""
