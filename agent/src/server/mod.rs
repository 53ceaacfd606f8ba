//! The agent's HTTP server: /metrics, /healthz, /readyz, /api/v1/status.
