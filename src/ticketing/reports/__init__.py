"""Reports: the admin summary (figures over a period, computed in SQL) and its CSV."""
