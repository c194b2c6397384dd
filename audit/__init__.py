"""zhuisu audit package."""
