"""elman.models"""
