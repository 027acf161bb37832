"""The integer contract: network IR, packed-spike packing and the bit-exact golden model.

NumPy only; nothing of ``hw`` or ``sw``.
"""
