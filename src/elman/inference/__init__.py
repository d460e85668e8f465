"""elman.inference"""
