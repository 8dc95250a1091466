"""The operator's HTTP API (`/admin/v1`): operator tokens and the template review desk."""
