"""elman.data"""
