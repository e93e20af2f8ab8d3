"""data/twin"""
