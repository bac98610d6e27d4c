"""Payroll feeds: CSV or Parquet records to text columns, then to exact cents and dates with a reason per bad row."""
