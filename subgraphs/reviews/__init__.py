"""Reviews: product reviews and ratings (moderation, verified purchases, helpful votes, seller replies)."""
