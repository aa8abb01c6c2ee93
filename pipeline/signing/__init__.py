"""Ký số: the agency's PAdES signature on an archived PDF/A-2b, and its verification.

``keys`` opens the agency's key (a PKCS#12 file, or a USB token / HSM through PKCS#11) and checks
it before any page is touched; ``sign`` adds the signature (B-B, B-T with a timestamp server,
B-LT/B-LTA with embedded validation data) as incremental updates that keep PDF/A-2b; ``verify``
tells whoever reuses a file whether it is intact, by whom and when it was signed, and whether the
chain reaches a trusted root. All of it is pyHanko.
"""
