"""Settings split by environment: base (shared), local (embedded defaults), test, production."""
