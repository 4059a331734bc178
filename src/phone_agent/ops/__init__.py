"""Operations: doctor checks, metrics, logging setup."""
