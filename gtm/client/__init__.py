"""The client room: how the runbook (and the drills) talk to members and judge convergence.

- `http`: connection settings (flags, environment, the demo's file), `ApiClient` (one
  session; writes follow a standby's 503 to the leader), `ApiError`, `CliError`, exit codes.
- the member's status it reads is `gtm.status.MemberStatus`, the type the member builds.
- `convergence`: what "done" means for a change on every member (`Change`, `MemberView`,
  `progress`).
- `answers_check`: what each member's DNS actually answers, against the intended split.

Nothing of the server is imported here but `gtm.api.tokens.read_token` (one reader of
token files for both sides); the server never imports this room.
"""
