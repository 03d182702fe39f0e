//! Policies: classifiers and the decision engine. Pure: no network, no clock, no globals.

pub mod calendar;
pub mod classify;
pub mod dialect;
pub mod glob;
pub mod policy;

pub use classify::{
    classify, classify_jsonl, classify_jsonl_with, joined_text, Category, Classification,
    Classifier, ClassifierError, ClassifyInput, ClassifyJsonlError, Detector, Finding,
    JsonlSummary, OrgRules, Segment, SegmentRole,
};
pub use dialect::Dialect;
