//! Shared helpers for Ferrodyn integration tests.
