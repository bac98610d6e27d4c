"""The rulebook: rule files and fact catalogues under rules/, and the condition language they are written in."""
