-- ecom_tokenize / ecom_tokens: BERT WordPiece, [CLS] ... [SEP]
SELECT ecom_tokenize('hello world');
SELECT ecom_tokens('Hello, World!');
SELECT ecom_tokens('Waterproof trail-running shoes (size 10.5)');
-- truncation keeps [CLS] first and [SEP] last
SELECT ecom_tokenize('one two three four five six seven', 5);
SELECT ecom_tokenize('one two three', 2);
SELECT array_length(ecom_tokenize(repeat('wool socks ', 100000)), 1) AS one_mb_default,
       array_length(ecom_tokenize(repeat('wool socks ', 100000), 512), 1) AS one_mb_512;
-- empty and whitespace-only text: just the special tokens
SELECT ecom_tokenize(''), ecom_tokenize(E' \t\n ');
-- Chinese product titles split per character; emoji is unknown to this vocabulary
SELECT ecom_tokens('不锈钢保温杯 500ml');
SELECT ecom_tokens('party balloons 🎉🎈');
-- accents are stripped, case folded
SELECT ecom_tokens('CAFÉ Crème');
-- NULL in, NULL out
SELECT ecom_tokenize(NULL) IS NULL AS null_text, ecom_tokenize('x', NULL) IS NULL AS null_len, ecom_tokens(NULL) IS NULL AS null_tokens;
-- bad max_len
SELECT ecom_tokenize('x', 0);
SELECT ecom_tokenize('x', 1);
SELECT ecom_tokenize('x', -5);
SELECT ecom_tokenize('x', 100000);
SELECT array_length(ecom_tokenize(repeat('a ', 1000), 512), 1) AS max_allowed;
-- ecom_tokens follows pg_ecom.max_seq_len
SET pg_ecom.max_seq_len = 4;
SELECT ecom_tokens('one two three four');
RESET pg_ecom.max_seq_len;
SET pg_ecom.max_seq_len = 1;
SET pg_ecom.max_seq_len = 513;
