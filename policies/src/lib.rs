//! Policies: classifiers and the decision engine. Pure: no network, no clock, no globals.
