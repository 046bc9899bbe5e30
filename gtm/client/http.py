"""How the runbook commands reach a member's API: connection settings and one HTTP client.

Settings, first found wins, each on its own:

1. the flags `--server URL`, `--token-file F` (and `--ca-file F` for a private CA);
2. the environment: `GTM_SERVER`, then `GTM_TOKEN` (the token itself) or `GTM_TOKEN_FILE`,
   and `GTM_CA_FILE`;
3. `.gtm-demo/cli.yaml` in the current directory (`{server: URL, token_file: PATH}`,
   written by `gtm demo`; relative paths are from the current directory);
4. the server `http://127.0.0.1:8080`; there is no default token.

Exit codes (`gtm.exits.ExitCode`, the same for every gtm command): 0 done, 1 the
member failed or could not be reached, 2 bad input or credentials, 3 refused by a
guardrail or a safety limit, 4 not converged before the timeout.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

import aiohttp
import click
import yaml

from gtm.api.tokens import TokenFileError, read_token
from gtm.exits import ExitCode

DEFAULT_SERVER = "http://127.0.0.1:8080"
DEMO_FILE = Path(".gtm-demo") / "cli.yaml"

WRITE_WAIT = 60.0  # seconds a write may take (reads: the client's timeout)


class CliError(Exception):
    """Something the operator must fix or know; carries the command's exit code."""

    def __init__(self, message: str, code: int = ExitCode.INPUT) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Connection:
    server: str
    token: str | None
    ca_file: str | None = None
    source: str = "default"  # where the server came from, for messages
    demo_file: str = str(DEMO_FILE)  # the demo's settings file looked for, for messages

    def require_token(self) -> str:
        if self.token is None:
            raise CliError(
                f"no token for {self.server} (server from {self.source}): looked for --token-file,"
                f" GTM_TOKEN, GTM_TOKEN_FILE and {self.demo_file}; pass --token-file F,"
                " set GTM_TOKEN or GTM_TOKEN_FILE, or run where `gtm demo` wrote"
                f" {DEMO_FILE} (set GTM_SERVER too when the server is not {DEFAULT_SERVER})"
            )
        return self.token


def _demo_settings(cwd: Path) -> dict[str, str]:
    path = cwd / DEMO_FILE
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise CliError(f"{path}: cannot read: {e}") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise CliError(f"{path}: expected a mapping like {{server: URL, token_file: PATH}}")
    return {str(k): v for k, v in data.items()}


def _token_from(path: str, cwd: Path, what: str) -> str:
    p = Path(path)
    try:
        return read_token(p if p.is_absolute() else cwd / p)
    except TokenFileError as e:
        raise CliError(f"{what}: {e}") from None


def resolve_connection(
    server: str | None = None,
    token_file: str | None = None,
    ca_file: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Connection:
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    demo = _demo_settings(cwd)
    demo_name = str(DEMO_FILE)
    if server:
        url, source = server, "--server"
    elif env.get("GTM_SERVER"):
        url, source = env["GTM_SERVER"], "GTM_SERVER"
    elif demo.get("server"):
        url, source = demo["server"], demo_name
    else:
        url, source = DEFAULT_SERVER, "default"
    token: str | None
    if token_file:
        token = _token_from(token_file, cwd, "--token-file")
    elif env.get("GTM_TOKEN"):
        token = env["GTM_TOKEN"].strip()
    elif env.get("GTM_TOKEN_FILE"):
        token = _token_from(env["GTM_TOKEN_FILE"], cwd, "GTM_TOKEN_FILE")
    elif demo.get("token_file"):
        token = _token_from(demo["token_file"], cwd, demo_name)
    else:
        token = None
    ca = ca_file or env.get("GTM_CA_FILE") or demo.get("ca_file")
    if ca is not None and not Path(ca).is_absolute():
        ca = str(cwd / ca)
    if not url.startswith(("http://", "https://")):
        raise CliError(f"{source}: {url!r} is not an http:// or https:// URL")
    demo_file = cwd / DEMO_FILE
    looked = f"{demo_file} ({'no token_file in it' if demo_file.is_file() else 'not found'})"
    return Connection(url.rstrip("/"), token, ca, source, looked)


def connection_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--ca-file", help="CA bundle that signed the API's certificate.")(f)
    f = click.option("--token-file", help="File holding the API token (or set GTM_TOKEN).")(f)
    f = click.option("--server", help=f"The API's URL (GTM_SERVER; default {DEFAULT_SERVER}).")(f)
    return f


class ApiError(Exception):
    """An error answer of the API (`status` 0: no answer at all)."""

    def __init__(self, status: int, error: str, details: Any = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.details = details

    @property
    def code(self) -> int:
        if self.status == 409:
            return ExitCode.REFUSED
        if 400 <= self.status < 500:
            return ExitCode.INPUT
        return ExitCode.FAILED


# A write that finds no leader (a takeover takes up to a lease duration) asks again this long.
ELECTION_WAIT = 20.0


class ApiClient:
    """One HTTP session to a member; writes follow a 503 "not the leader" once.

    async with ApiClient(resolve_connection()) as api:
        status = await api.get("/v1/status")
    """

    def __init__(self, connection: Connection, *, timeout: float = 10.0) -> None:
        self.connection = connection
        self.base = connection.server
        self._token = connection.require_token()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._ssl: ssl.SSLContext | bool = True
        if connection.ca_file is not None:
            try:
                self._ssl = ssl.create_default_context(cafile=connection.ca_file)
            except (OSError, ssl.SSLError) as e:
                raise CliError(f"CA file {connection.ca_file}: cannot load: {e}") from None

    async def __aenter__(self) -> ApiClient:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def get(self, path: str, *, base: str | None = None, **params: Any) -> Any:
        query = {k: str(v) for k, v in params.items() if v is not None}
        return await self.request("GET", path, params=query, base=base)

    async def write(self, method: str, path: str, body: Mapping[str, Any]) -> Any:
        """A write to the leader: a standby's 503 names it, and it is asked once more there.

        Writes may wait for the store (a compare-and-swap with retries): up to WRITE_WAIT.
        """
        deadline = time.monotonic() + ELECTION_WAIT
        while True:
            try:
                return await self.request(method, path, body=body, slow=True)
            except ApiError as e:
                if e.status != 503:
                    raise
                address = e.details.get("address") if isinstance(e.details, dict) else None
                if not address and time.monotonic() < deadline:
                    # no leader elected yet (members starting, or a takeover under way)
                    click.echo(f"{self.base}: no leader yet; asking again", err=True)
                    await asyncio.sleep(1.0)
                    continue
                if not address or address.rstrip("/") == self.base:
                    raise
                leader = e.details.get("leader") or "the leader"
                click.echo(f"{self.base} is not the leader: asking {leader} at {address}", err=True)
                self.base = str(address).rstrip("/")
                return await self.request(method, path, body=body, slow=True)

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        base: str | None = None,
        slow: bool = False,
    ) -> Any:
        if self._session is None:
            raise RuntimeError("ApiClient used outside `async with`")
        url = (base or self.base) + path
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            async with self._session.request(
                method,
                url,
                json=body,
                params=params,
                headers=headers,
                ssl=self._ssl,
                timeout=aiohttp.ClientTimeout(total=WRITE_WAIT) if slow else self._timeout,
            ) as r:
                try:
                    data = await r.json(content_type=None)
                except ValueError:
                    data = {"error": (await r.text())[:200] or r.reason}
                if r.status >= 400:
                    doc = data if isinstance(data, dict) else {}
                    raise ApiError(r.status, str(doc.get("error", r.reason)), doc.get("details"))
                return data
        except aiohttp.ClientError as e:
            raise ApiError(0, f"cannot reach {url}: {e or type(e).__name__}") from None
        except TimeoutError:
            waited = WRITE_WAIT if slow else self._timeout.total
            raise ApiError(0, f"no answer from {url} in {waited:.0f}s") from None


def fail(message: str, code: int) -> NoReturn:
    click.secho(message, fg="red", err=True)
    sys.exit(code)


def run(
    work: Callable[[ApiClient], Coroutine[Any, Any, int]],
    options: Mapping[str, Any],
    *,
    refused: Callable[[ApiError], None] | None = None,
) -> NoReturn:
    """Resolve the connection from `options` (the connection flags), run `work` with a client
    and exit with its code, or with the error's (`refused` prints a 409 first)."""
    try:
        connection = resolve_connection(
            options.get("server"), options.get("token_file"), options.get("ca_file")
        )

        async def main() -> int:
            async with ApiClient(connection) as api:
                return await work(api)

        code = asyncio.run(main())
    except CliError as e:
        fail(str(e), e.code)
    except ApiError as e:
        if e.status == 409 and refused is not None:
            refused(e)
        fail(f"error: {e.error}", e.code)
    sys.exit(code)
