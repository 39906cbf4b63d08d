"""The operator console: the live board of calls (board), its SSE stream (stream) and the
operator's actions on calls (actions), served under /api/v1/console."""
