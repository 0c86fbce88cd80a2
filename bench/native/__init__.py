"""Native (C) parts of hellobench and the cached build that compiles them."""
