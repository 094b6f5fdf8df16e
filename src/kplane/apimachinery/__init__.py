"""apimachinery"""
