"""CloudTrail's API on the service's trail: LookupEvents (:mod:`openkms.service.trail.lookup`)."""
