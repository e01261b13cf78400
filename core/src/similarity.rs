//! Stage 3: maths on embeddings (pure Rust).

/// Cosine similarity of two vectors of equal length.
///
/// Follows pgvector: a zero vector has no direction, so the result is NaN.
/// The embeddings pg_ecom produces are unit length, where this equals the
/// dot product.
pub fn cosine(a: &[f32], b: &[f32]) -> Result<f64, String> {
    if a.len() != b.len() {
        return Err(format!(
            "embeddings have different lengths: {} and {}",
            a.len(),
            b.len()
        ));
    }
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    Ok(dot / (na.sqrt() * nb.sqrt()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_vectors_have_cosine_one() {
        let v = [0.3f32, -0.4, 1.2];
        assert!((cosine(&v, &v).unwrap() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn opposite_and_orthogonal() {
        assert!((cosine(&[1.0, 0.0], &[-2.0, 0.0]).unwrap() + 1.0).abs() < 1e-12);
        assert!(cosine(&[1.0, 0.0], &[0.0, 3.0]).unwrap().abs() < 1e-12);
    }

    #[test]
    fn length_mismatch_is_an_error() {
        let e = cosine(&[1.0, 2.0], &[1.0]).unwrap_err();
        assert!(e.contains("different lengths: 2 and 1"), "{e}");
    }

    #[test]
    fn zero_vector_gives_nan() {
        assert!(cosine(&[0.0, 0.0], &[1.0, 0.0]).unwrap().is_nan());
        assert!(cosine(&[], &[]).unwrap().is_nan());
    }
}
