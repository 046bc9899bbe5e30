"""Where the API's tokens come from: `api.tokens_file`, or a Kubernetes Secret.

The Secret's keys are token names and its values `role:token` (base64 in
`data`, as the API server returns them); it is read through
`kube.Client` from `api.tokens_secret.cluster`, by default the first
cluster of the member's region (or of the config, when no region is given).
"""

from __future__ import annotations

import base64
import binascii
from functools import partial

import structlog

from gtm.api.tokens import TokenBook, TokenFileError
from gtm.config import ApiConfig, ClusterConfig, Inventory
from gtm.config.errors import Problem
from kube import Client, load_configuration

log = structlog.get_logger("gtm.api")


async def read_token_secret(client: Client, name: str, namespace: str) -> TokenBook:
    """The tokens of Secret `namespace/name`; a `kube.KubeError` when it cannot be read."""
    secret = await client.request(
        "get",
        partial(client.core.read_namespaced_secret, name, namespace),
        what=f"{namespace}/{name}",
    )
    source = f"secret {namespace}/{name}"
    decoded: dict[str, bytes] = {}
    problems: list[Problem] = []
    for key, value in (secret.get("data") or {}).items():
        try:
            decoded[key] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            problems.append(Problem(source, None, (key,), "not base64"))
    if problems:
        raise TokenFileError(problems)
    return TokenBook.from_secret_data(decoded, source)


async def load_tokens(api: ApiConfig, inventory: Inventory, region: str | None = None) -> TokenBook:
    """The token book `api` names. Without any, an empty book: only the open routes answer."""
    if api.tokens_file is not None and api.tokens_secret is not None:
        raise TokenFileError(
            [Problem(inventory.file, None, ("api",), "set tokens_file or tokens_secret, not both")]
        )
    if api.tokens_file is not None:
        return TokenBook.from_file(api.tokens_file)
    ref = api.tokens_secret
    if ref is None:
        log.warning("api.no_tokens", hint="set api.tokens_file or api.tokens_secret")
        return TokenBook((), "no tokens configured")
    cluster = _cluster(inventory, ref.cluster, region)
    async with Client(await load_configuration(cluster), timeout=cluster.timeout) as client:
        return await read_token_secret(client, ref.name, ref.namespace)


def _cluster(inventory: Inventory, name: str | None, region: str | None) -> ClusterConfig:
    clusters = inventory.config.kubernetes.clusters
    if name is not None:
        candidates = [c for c in clusters if c.name == name]
    else:
        candidates = [c for c in clusters if region is None or c.region == region]
    if not candidates:
        where = f"cluster named {name!r}" if name else f"cluster in region {region or '(any)'}"
        problem = f"no {where} to read the Secret from"
        raise TokenFileError([Problem(inventory.file, None, ("api", "tokens_secret"), problem)])
    return candidates[0]
