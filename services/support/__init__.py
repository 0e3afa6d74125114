"""Support: what staff do for a customer on the phone, and how staff sign in to do it."""
