//! Labelled tabular data read from delimited text files.

use std::path::Path;

use crate::error::ModelError;
use crate::schema::{Record, Value};

/// How to read a labelled CSV file.
#[derive(Clone, Debug)]
pub struct CsvOptions {
    pub delimiter: u8,
    /// Name of the outcome column.
    pub target: String,
    /// Value of the outcome column that counts as a response.
    pub positive: String,
    /// Columns to leave out of the records.
    pub drop: Vec<String>,
}

/// Records with their binary outcomes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset {
    records: Vec<Record>,
    labels: Vec<bool>,
}

impl Dataset {
    /// Pairs records with labels; both must have the same length.
    pub fn new(records: Vec<Record>, labels: Vec<bool>) -> Result<Self, ModelError> {
        if records.len() != labels.len() {
            return Err(ModelError::Training(format!(
                "{} records but {} labels",
                records.len(),
                labels.len()
            )));
        }
        Ok(Dataset { records, labels })
    }

    /// Reads a CSV file with a header row. Every cell becomes a text value
    /// (an empty cell is missing); the schema decides how it is parsed.
    pub fn from_csv(path: &Path, options: &CsvOptions) -> Result<Self, ModelError> {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(options.delimiter)
            .from_path(path)
            .map_err(|e| csv_error(path, e))?;
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| csv_error(path, e))?
            .iter()
            .map(|h| h.trim().to_owned())
            .collect();
        let target = header
            .iter()
            .position(|h| *h == options.target)
            .ok_or_else(|| ModelError::Data {
                path: path.to_path_buf(),
                line: 1,
                message: format!("target column `{}` not found in header", options.target),
            })?;

        let mut dataset = Dataset::default();
        for row in reader.records() {
            let row = row.map_err(|e| csv_error(path, e))?;
            let mut record = Record::new();
            for (column, cell) in header.iter().zip(row.iter()) {
                if *column == options.target || options.drop.contains(column) {
                    continue;
                }
                let cell = cell.trim();
                let value = if cell.is_empty() {
                    Value::Missing
                } else {
                    Value::from(cell)
                };
                record.set(column, value);
            }
            dataset
                .labels
                .push(row.get(target).map(str::trim) == Some(options.positive.as_str()));
            dataset.records.push(record);
        }
        Ok(dataset)
    }

    /// Copies the rows at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        Dataset {
            records: indices.iter().map(|&i| self.records[i].clone()).collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    pub fn labels(&self) -> &[bool] {
        &self.labels
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

fn csv_error(path: &Path, error: csv::Error) -> ModelError {
    let line = error.position().map_or(0, |p| p.line());
    match error.into_kind() {
        csv::ErrorKind::Io(source) => ModelError::io("read", path, source),
        kind => ModelError::Data {
            path: path.to_path_buf(),
            line,
            message: format!("{kind:?}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_csv_reads_labels_and_drops_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.csv");
        std::fs::write(
            &path,
            "\"age\";\"duration\";\"job\";\"y\"\n30;120;\"admin.\";\"yes\"\n41;15;;\"no\"\n",
        )
        .unwrap();
        let options = CsvOptions {
            delimiter: b';',
            target: "y".into(),
            positive: "yes".into(),
            drop: vec!["duration".into()],
        };

        let data = Dataset::from_csv(&path, &options).unwrap();

        assert_eq!(data.labels(), &[true, false]);
        assert_eq!(
            data.records()[0],
            Record::new().with("age", "30").with("job", "admin.")
        );
        assert_eq!(data.records()[1].get("job"), &Value::Missing);
    }

    #[test]
    fn from_csv_rejects_missing_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.csv");
        std::fs::write(&path, "age,job\n30,admin.\n").unwrap();
        let options = CsvOptions {
            delimiter: b',',
            target: "y".into(),
            positive: "yes".into(),
            drop: vec![],
        };

        let error = Dataset::from_csv(&path, &options).unwrap_err();

        assert!(
            error.to_string().contains("target column `y` not found"),
            "{error}"
        );
    }
}
