//! Policies: classifiers and the decision engine. Pure: no network, no clock, no globals.

pub mod classify;
pub mod policy;

pub use classify::{
    classify, classify_jsonl, classify_jsonl_with, joined_text, Category, Classification,
    Classifier, ClassifierError, ClassifyInput, ClassifyJsonlError, Detector, Finding, OrgRules,
    Segment, SegmentRole,
};
