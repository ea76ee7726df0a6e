"""Promotions: flash sales (Redis Lua on the hot path, Postgres for definitions) and coupons."""
