"""The compiled part of gtm: the UDP answer path `gtm.dns._fast` (gtm/dns/_fast.c).

Everything else is in pyproject.toml. The extension is optional: where it cannot
be built (no compiler, no Python headers) the install goes on and gtm answers on
its pure-Python path (gtm.dns.fast says which one serves).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "gtm.dns._fast",
            sources=["gtm/dns/_fast.c"],
            extra_compile_args=[
                "-O2",
                "-Wall",
                "-Wextra",
                "-Wno-unused-parameter",
                "-Wno-missing-field-initializers",
            ],
            optional=True,
        )
    ]
)
