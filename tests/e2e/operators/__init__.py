"""Small operators, written with real operator frameworks, that the e2e tests run as processes."""
