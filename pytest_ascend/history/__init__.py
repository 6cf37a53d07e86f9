"""`pytest-ascend history`: stored benchmark runs grouped by CANN (or any machine_info key),
compared with a noise-aware gate, and rendered as tables, JSON, a plot or a page. Imports
no torch."""
