"""The sanity tier: ansible-test sanity on the collection (slow on the first run)."""
