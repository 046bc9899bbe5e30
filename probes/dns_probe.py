"""The `dns` probe: one query over UDP to the target, judged on rcode and, optionally, answer."""

from __future__ import annotations

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype

from probes.observation import ProbeResult
from probes.spec import DnsProbe, Target


def _normal(text: str) -> str:
    return text.strip().rstrip(".").lower()


def judge_response(spec: DnsProbe, response: dns.message.Message) -> ProbeResult:
    """Pure verdict on a response: `dns NOERROR`, `dns NXDOMAIN`, `dns answer mismatch`."""
    rcode = dns.rcode.to_text(response.rcode())
    if rcode != spec.expect_rcode:
        return ProbeResult(False, f"dns {rcode}")
    if spec.expect_answer is not None:
        wanted = _normal(spec.expect_answer)
        qtype = dns.rdatatype.from_text(spec.qtype)
        answers = [
            _normal(rdata.to_text())
            for rrset in response.answer
            if rrset.rdtype == qtype or qtype == dns.rdatatype.ANY
            for rdata in rrset
        ]
        if wanted not in answers:
            return ProbeResult(False, "dns answer mismatch")
    return ProbeResult(True, f"dns {rcode}")


class DnsChecker:
    """Sends the spec's query to the target's address and port; timeouts come from the caller."""

    async def probe(self, target: Target, spec: DnsProbe) -> ProbeResult:
        query = dns.message.make_query(spec.qname, spec.qtype)
        response = await dns.asyncquery.udp(query, target.address, port=target.port)
        return judge_response(spec, response)
