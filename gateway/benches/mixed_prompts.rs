//! The built-in mixed prompt set of the learned-detector benches (`ner`, `sentence_head`):
//! prose, code, maths, public figures and a few with personal data.

pub const MIXED: &[&str] = &[
    "Explain how a hash map handles collisions, with an example in Rust.",
    "What is the capital of Australia?",
    "Write a haiku about autumn rain.",
    "def add(a, b):\n    return a + b\n# write tests for this function",
    "Janet has 3 apples and buys 5 more. How many apples does she have?",
    "Summarize the plot of the novel in which Elizabeth Bennet meets Fitzwilliam Darcy.",
    "Please ship the replacement to Maria Gonzalez, 42 Elm Street, Springfield.",
    "Draft a polite reply to Tomasz Kowalczyk about the delayed refund.",
    "My card is 4539 5780 1234 5671, can you check the charge?",
    "Translate 'good morning' into Spanish, French and German.",
    "SELECT name, COUNT(*) FROM orders GROUP BY name HAVING COUNT(*) > 5;",
    "Compare the marketing strategies of Procter & Gamble and Unilever.",
    "What are the main causes of inflation? Answer in three bullet points.",
    "Our new hire Priya Raman needs a laptop and a badge. Draft the IT request.",
    "Write a short biography of Marie Curie.",
    "Give me a regex that matches ISO 8601 dates.",
    "How do I center a div in CSS?",
    "My email is jon.smith77@fastmail.com, please unsubscribe me.",
    "List five healthy breakfast ideas.",
    "The New York Times reported on the Federal Reserve decision today. Summarise it.",
];
