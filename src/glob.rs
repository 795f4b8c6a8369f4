//! Redis-semantics glob matching (KEYS, SCAN MATCH, PSUBSCRIBE).
