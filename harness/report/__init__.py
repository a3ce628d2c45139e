"""Reports built from run directories: statistics, tables, leaderboards, viewers."""
