//! Mock upstreams and test harness for end-to-end tests.
