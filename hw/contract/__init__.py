"""The host/device contract: what the gateware and the host driver both obey, written once.

One module each: ``bus`` (the core's register/memory bus and fixed address map), ``registers``
(control/status bits), ``errors`` (core error codes), ``memory_map`` (build-dependent regions,
descriptor words, identify block, weight word packing), ``protocol`` (host-link frames) and
``params`` (the build parameters a device reports). Imported by ``hw`` gateware and by ``sw.host``;
it imports neither.
"""
