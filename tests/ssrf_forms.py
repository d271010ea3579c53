"""Known ways of writing a URL so that it reaches this machine, the private network or a
cloud metadata service while looking like something else. Each is refused when a webhook is
saved (tests/webhook/test_endpoints.py, tests/kit/test_netpolicy.py) and when it is sent
(tests/kit/test_outbound.py)."""

from __future__ import annotations


def loopback_forms(port: int) -> dict[str, str]:
    """Each names 127.0.0.1 (where a receiver listens) in another way."""
    return {
        "plain loopback": f"http://127.0.0.1:{port}/",
        "decimal integer": f"http://2130706433:{port}/",
        "hexadecimal integer": f"http://0x7f000001:{port}/",
        "octal dotted": f"http://0177.0.0.1:{port}/",
        "short form": f"http://127.1:{port}/",
        "dotted hexadecimal": f"http://0x7f.0.0.1:{port}/",
        "zero padded": f"http://127.000.000.001:{port}/",
        "IPv4-mapped IPv6": f"http://[::ffff:127.0.0.1]:{port}/",
        "IPv4-mapped IPv6, hex": f"http://[::ffff:7f00:1]:{port}/",
        "IPv4-mapped IPv6, long": f"http://[0:0:0:0:0:ffff:127.0.0.1]:{port}/",
        "NAT64 embedding": f"http://[64:ff9b::7f00:1]:{port}/",
        "6to4 embedding": f"http://[2002:7f00:1::]:{port}/",
        "ideographic dots": f"http://127\u30020\u30020\u30021:{port}/",
        "circled digits": f"http://\u2460\u2461\u2466.0.0.\u2460:{port}/",
        "localhost": f"http://localhost:{port}/",
        "localhost, upper case, trailing dot": f"http://LOCALHOST.:{port}/",
        "a localhost subdomain": f"http://hooks.localhost:{port}/",
        "unspecified address": f"http://0.0.0.0:{port}/",
        "zero": f"http://0:{port}/",
        "IPv6 loopback": f"http://[::1]:{port}/",
        "IPv6 unspecified": f"http://[::]:{port}/",
    }


ELSEWHERE = {
    "AWS metadata": "http://169.254.169.254/latest/meta-data/",
    "AWS metadata, decimal": "http://2852039166/latest/meta-data/",
    "AWS metadata, IPv4-mapped": "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
    "AWS metadata over IPv6": "http://[fd00:ec2::254]/latest/meta-data/",
    "GCP metadata by name": "http://metadata.google.internal/computeMetadata/v1/",
    "Alibaba metadata (CGNAT range)": "http://100.100.100.200/latest/meta-data/",
    "Oracle metadata": "http://192.0.0.192/latest/",
    "private 10/8": "http://10.0.0.1/",
    "private 172.16/12": "http://172.16.0.1/",
    "private 192.168/16": "http://192.168.1.1/",
    "carrier-grade NAT": "http://100.64.0.1/",
    "IPv6 link-local": "http://[fe80::1]/",
    "IPv6 unique local": "http://[fc00::1]/",
    "multicast": "http://224.0.0.1/",
    "broadcast": "http://255.255.255.255/",
    "credentials hiding the host": "http://127.0.0.1:80@hooks.example.com/",
    "backslash confusion": "http://hooks.example.com\\@127.0.0.1/",
    "not http": "file:///etc/passwd",
    "gopher": "gopher://127.0.0.1:25/",
}
