"""The service's audit trail: CloudTrail's LookupEvents (:mod:`openkms.service.trail.lookup`), and its
tamper evidence: signing keys (:mod:`.signing`), signed digests and retention (:mod:`.digests`),
verification (:mod:`.verify`)."""
